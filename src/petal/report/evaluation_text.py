"""`petal evaluate`'s report as text: what was evaluated, the per-class table, the headline
figures and the files written (from metrics.json's content)."""

from __future__ import annotations

from petal.stats import FEW_PHOTOS, INTERVAL_BELOW, describe_accuracy


def _card_accuracy(accuracy: dict) -> str:
    """What a model card says of the model's accuracy: how measured, over how many photos."""
    said = (describe_accuracy(accuracy["correct"], accuracy["n"], interval=True)
            if accuracy.get("correct") is not None else f"{100 * accuracy['value']:.1f} %")
    over = f" over {accuracy['folds']} folds" if accuracy["how"] == "cross-validated" else ""
    return f"{accuracy['how']} accuracy {said}{over}"


def _cell(value: float | None) -> str:
    return f"{100 * value:7.1f} %" if value is not None else f"{'-':>9}"


def _mapping_line(mapping: dict[str, str], n_classes: int) -> str:
    if all(folder == name for folder, name in mapping.items()):
        return f"Class folders: {len(mapping)} of the model's {n_classes} classes, same names"
    return "Class folders: " + ", ".join(f"{folder} -> {name}" for folder, name in mapping.items())


def _open_set_line(open_set: dict) -> str:
    kept = open_set["accuracy_kept"]
    return (f"Unknown photos ({open_set['n_unknown']} in {open_set['unknown_data']}): AUROC "
            f"{open_set['auroc']:.3f}, FPR95 {100 * open_set['fpr95']:.1f} %; at the threshold "
            f"(keeps {100 * open_set['keep']:.0f} % of validation photos) "
            f"{100 * open_set['unknown_rejected']:.1f} % of them called unknown, "
            f"{100 * open_set['known_kept']:.1f} % of the known photos kept, "
            + ("none right" if kept is None else f"{100 * kept:.1f} % of those right")
            + f" (all: {100 * open_set['accuracy_all']:.1f} %)")


def format_summary(metrics: dict) -> str:
    """The human-readable report: what was evaluated, per-class table, headline numbers, files."""
    source = metrics["data"] + (f" (part {metrics['part']} of {metrics['split']})"
                                if metrics["split"] and metrics["part"] else "")
    fold = metrics.get("out_of_fold")
    width = max([len(c) for c in metrics["classes"]] + [9]) + 2  # room for " *"
    lines = [f"Model: {metrics['model']} ({metrics['architecture']})"
             + (f"; its card: {_card_accuracy(metrics['card_accuracy'])}"
                if metrics.get("card_accuracy") else ""),
             f"Data:  {source}: {metrics['n_images']} images; "
             + (f"out of fold: the model trained on all of them, so each is answered by the "
                f"one of its {fold['folds']} cross-validation models that did not train on it"
                if fold else
                "the model averages each with its mirror" if metrics["mirror"] else
                "each image and its mirror averaged (--tta: not what predict gives)"
                if metrics["tta"] else "one view per image, as predict sees it"),
             _mapping_line(metrics["class_mapping"], len(metrics["classes"])),
             "", f"{'class':<{width}}  {'precision':>9}{'recall':>9}{'f1':>9}{'support':>9}"]
    for name, row in metrics["per_class"].items():
        marked = name + (" *" if row["support"] < FEW_PHOTOS else "")
        lines.append(f"{marked:<{width}}  {_cell(row['precision'])}{_cell(row['recall'])}"
                     f"{_cell(row['f1'])}{row['support']:>9}")
    if any(row["support"] < FEW_PHOTOS for row in metrics["per_class"].values()):
        lines.append(f"* fewer than {FEW_PHOTOS} photos: that class's figures say little")
    macro = metrics["macro_avg"]
    lines += [f"{'macro avg':<{width}}  {_cell(macro['precision'])}{_cell(macro['recall'])}"
              f"{_cell(macro['f1'])}{metrics['n_images']:>9}", "",
              f"accuracy {describe_accuracy(metrics['n_correct'], metrics['n_images'])}",
              f"top-{metrics['top_k']} accuracy {100 * metrics['top_k_accuracy']:.1f} %   "
              f"ECE {metrics['ece']:.3f} ({metrics['ece_bins']} bins"
              + (f"; {metrics['ece_uncalibrated']:.3f} without the model's temperature "
                 f"{metrics['temperature']:.3g}" if metrics["temperature"] != 1.0 else "")
              + ("; the temperature was fitted on these answers: optimistic" if fold else "")
              + ("; rough on so few images" if metrics["n_images"] < INTERVAL_BELOW else "")
              + f")   mistakes {metrics['n_mistakes']}"]
    found = metrics["training_images"]["found"]
    if found and metrics["training_images"]["included"]:
        lines.append(f"warning: {found} of the {metrics['n_images']} images were used to train "
                     "this model: the accuracy overstates what it does on new photos")
    elif found:
        lines.append(f"Left out {found} photo(s) this model was trained on "
                     "(--include-training scores them too)")
    if "shift_unavailable" in metrics:
        lines.append("Whether these photos differ from the training photos is not checked: "
                     + metrics["shift_unavailable"])
    if "shift" in metrics:
        said = metrics["shift"]["message"]
        lines.append(f"warning: {said}" if metrics["shift"]["shifted"]
                     else said[0].upper() + said[1:])
    if "open_set" in metrics:
        lines.append(_open_set_line(metrics["open_set"]))
    if metrics["skipped"]:
        lines.append(f"{len(metrics['skipped'])} unreadable file(s) skipped "
                     "(listed in metrics.json)")
    lines.append(f"Wrote {metrics['out']}/: {', '.join(metrics['files'])}")
    return "\n".join(lines)
