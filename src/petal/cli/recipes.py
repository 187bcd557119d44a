"""`petal recipes`: the training recipes and every field of each."""

from __future__ import annotations

import argparse


def add_commands(verbs: argparse._SubParsersAction) -> None:
    recipes = verbs.add_parser("recipes", help="list the training recipes and their fields")
    recipes.set_defaults(func=cmd_recipes)


def cmd_recipes(args: argparse.Namespace) -> int:
    from petal.training.recipes import describe_recipes

    print(describe_recipes())
    return 0
