"""Calibration recipes (calibration/*.yaml): which texts static quantization measures ranges on, and how many."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeft.errors import BadInput
from edgeft.profile import describe_validation_error
from edgeft.resources import list_resource_files, resource_dir


class CalibrationMethod(str, Enum):
    MINMAX = "minmax"


class CalibrationRecipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    # Only the training split: calibrating on held-out texts would leak them into the shipped model.
    split: Literal["train"] = "train"
    samples: int = Field(256, ge=1, le=100_000)
    seed: int = 0
    method: CalibrationMethod = CalibrationMethod.MINMAX


def recipe_path(name: str) -> Path:
    path = resource_dir("calibration") / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in list_resource_files("calibration", ".yaml")) or "none"
        raise BadInput(f"unknown calibration recipe '{name}'; add calibration/{name}.yaml or use one of: {known}")
    return path


def load_recipe(name: str) -> CalibrationRecipe:
    path = recipe_path(name)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        recipe = CalibrationRecipe.model_validate(raw)
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: cannot parse YAML ({exc})") from None
    except ValidationError as exc:
        raise BadInput(f"{path}: {describe_validation_error(exc)}") from None
    if recipe.name != path.stem:
        raise BadInput(f"{path}: field 'name' is '{recipe.name}' but the file is '{path.stem}.yaml'; make them equal")
    return recipe
