"""The review page: `petal review DIR` shows the findings of `petal data review --out DIR`
one photo at a time (petal.serve.local_page) and writes each decision to DIR/review.csv.

Each decision reads review.csv again (a person may have edited it meanwhile), changes the
photo's rows and replaces the file atomically (petal.data.review_sheet), under a lock, before the
answer is sent: what the page says was saved is on disk, and killing the server never
leaves half a file. Only the photos the review file names are served, from inside the
reviewed folder.
"""

from __future__ import annotations

import threading
from pathlib import Path
from shlex import quote

from petal.data.decisions import ACTIONS, REVIEW_CSV
from petal.data.review_sheet import ReviewSheet, relative_image_path
from petal.errors import PetalError
from petal.fsutil import name_problem, read_json, remove_stale_temporaries
from petal.serve.local_page import Decision, named, shown

FINDINGS = {"label": "likely label mistake", "hard": "hard or ambiguous",
            "outlier": "outlier: far from every other photo"}


class ReviewFolder:
    """What `petal data review --out DIR` wrote: review.json (the folder reviewed, its
    classes) and review.csv (the decisions), as the review page's DecisionSource."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.sheet_path = self.folder / REVIEW_CSV
        make = "make one with `petal data review DATA --out REVIEW_DIR`, then `petal review " \
            "REVIEW_DIR`"
        try:
            summary = read_json(self.folder / "review.json")
            self.root = Path(str(summary["root"]))
            self.classes = [str(c) for c in summary["classes"]]
            if problem := next(filter(None, map(name_problem, self.classes)), None):
                raise ValueError(f"class {problem}")
            self.summary = (f"{int(summary['n_images'])} photos in {len(self.classes)} classes;"
                            f" {int(summary['folds'])}-fold out-of-fold predictions agree with "
                            f"the given label for {100 * float(summary['oof_accuracy']):.1f} %.")
        except FileNotFoundError as exc:
            raise PetalError(f"{self.folder} has no review.json: {make}") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PetalError(f"{self.folder}/review.json is not a petal review: {exc}") from exc
        if not self.sheet_path.is_file():
            raise PetalError(f"{self.sheet_path} does not exist: {make}")
        if not self.root.is_dir():
            raise PetalError(f"review.json says the photos are in {self.root}, which is not a "
                             "folder (moved since, or a review made by an older petal with a "
                             "relative path: make the review again)")
        self.read()  # a file petal cannot use is refused before the page opens
        self.lock = threading.Lock()

    def read(self) -> ReviewSheet:
        return ReviewSheet.read(self.sheet_path)

    def tidy(self) -> None:
        """Delete what a killed write left beside review.csv (call it holding the folder)."""
        remove_stale_temporaries(self.sheet_path)

    def page(self) -> dict:
        return {
            "title": f"petal review of {self.root}",
            "summary": self.summary,
            "next_step": {"text": "Every decision is saved at once. Then train with them:",
                          "command": f"petal train --data {quote(str(self.root))} --review "
                                     f"{quote(str(self.sheet_path.absolute()))}"},
            "classes": self.classes,
            "class_action": "relabel", "class_prompt": "Relabel as:",
            "class_done": "relabelled as",
            "actions": [{"action": "keep", "key": "k", "text": "Keep as filed",
                         "done": "kept as filed"},
                        {"action": "exclude", "key": "x", "text": "Exclude",
                         "done": "excluded from training"}],
            "filters": [["all", "All"], ["undecided", "Not decided"],
                        ["label", "Likely mistakes"], ["hard", "Hard or ambiguous"],
                        ["outlier", "Outliers"]],
        }

    def items(self) -> list[dict]:
        """Each photo once (a file edited by hand may name one twice)."""
        rows: dict[str, dict] = {}
        for row in self.read().findings():
            rows.setdefault(row["path"], row)
        return [_item(row) for row in rows.values()]

    def decide(self, decision: Decision) -> dict:
        if decision.action == "relabel" and decision.label not in self.classes:
            raise PetalError(f"relabel to {decision.label!r}: the label must be one of "
                             f"{', '.join(self.classes)}")
        with self.lock:
            sheet = self.read()
            path = named(decision.key)
            given = {row["path"]: row["given"] for row in sheet.findings()}.get(path)
            action = "keep" if decision.action == "relabel" and decision.label == given \
                else decision.action  # relabelled as its own class: kept
            row = sheet.decide(path, action, decision.label)
            sheet.save()
        return _item(row)

    def photo(self, key: str) -> Path:
        path = named(key)
        if path not in {row["path"] for row in self.read().findings()}:
            raise PetalError(f"{key!r} is not a photo of this review")
        return self.root / relative_image_path(path)


def _item(row: dict) -> dict:
    """A review.csv row as the page shows it (an action petal does not know, typed in by
    hand, as undecided, and said)."""
    tags = row["finding"].split("+")
    lines = [f"Filed as {row['given']}"
             + (f", looks like {row['suggested']} (score {row['score']})"
                if row["suggested"] else f" (distance {row['score']})"),
             "Found as: " + ", ".join(FINDINGS.get(tag, tag) for tag in tags)]
    action = row["action"]
    if action not in (*ACTIONS, ""):
        lines.append(f"review.csv says {action!r}, which petal does not know: decide again")
        action = ""
    return {"key": shown(row["path"]), "name": shown(row["path"]), "lines": lines,
            "suggested": row["suggested"], "action": action,
            "label": row["label"] if action == "relabel" else "", "tags": tags}
