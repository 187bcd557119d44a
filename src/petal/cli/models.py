"""`petal models`: the model names petal knows."""

from __future__ import annotations

import argparse


def add_commands(verbs: argparse._SubParsersAction) -> None:
    models = verbs.add_parser("models", help="list the model names petal knows")
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from petal.models import model_names

    print("\n".join(model_names()))
    print("... and any timm model as timm:NAME (see timm.list_models()), and several "
          "pretrained trunks under one head as TRUNK+TRUNK, each optionally TRUNK@SIZE "
          "(efficientnet_lite0+efficientnet_lite2@300)")
    return 0
