"""Target profiles and calibration recipes: every shipped file loads, and bad ones fail naming file and field."""

from __future__ import annotations

import pytest
import yaml

from edgeft.data.calibration import load_recipe
from edgeft.errors import BadInput
from edgeft.profile import TargetProfile, available_targets, load_profile, targets_dir
from edgeft.resources import list_resource_files

REQUIRED = {"x86-avx2", "x86-avx512-vnni", "arm64", "mobile", "openvino-cpu"}


def test_the_required_targets_ship():
    assert REQUIRED <= set(available_targets())


@pytest.mark.parametrize("name", available_targets())
def test_every_profile_round_trips_through_yaml(name, tmp_path):
    profile = load_profile(name)
    assert profile.name == name  # the file name and the profile's name agree
    copy = tmp_path / f"{name}.yaml"
    copy.write_text(yaml.safe_dump(profile.model_dump(mode="json")), encoding="utf-8")
    assert load_profile(str(copy)) == profile


@pytest.mark.parametrize("path", list_resource_files("calibration", ".yaml"), ids=lambda p: p.stem)
def test_every_calibration_recipe_loads(path):
    recipe = load_recipe(path.stem)
    assert recipe.samples > 0 and recipe.split == "train"


def _write(tmp_path, text: str):
    path = tmp_path / "custom.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _base() -> dict:
    return yaml.safe_load((targets_dir() / "x86-avx2.yaml").read_text())


def test_unknown_key_names_file_and_field(tmp_path):
    raw = _base()
    raw["input"]["max_lenght"] = 64
    path = _write(tmp_path, yaml.safe_dump(raw))
    with pytest.raises(BadInput, match=r"custom\.yaml: unknown field 'input\.max_lenght'"):
        load_profile(path)


def test_bad_value_names_field_and_value(tmp_path):
    raw = _base()
    raw["quantization"]["candidates"][0]["scheme"] = "int3"
    with pytest.raises(BadInput, match=r"field 'quantization\.candidates\.0\.scheme'.*'int3'"):
        load_profile(_write(tmp_path, yaml.safe_dump(raw)))


def test_format_must_fit_runtime(tmp_path):
    raw = _base()
    raw["format"] = "openvino-ir"
    with pytest.raises(BadInput, match="format 'openvino-ir' is not read by runtime 'onnxruntime'"):
        load_profile(_write(tmp_path, yaml.safe_dump(raw)))


def test_static_quantization_needs_a_calibration_recipe(tmp_path):
    raw = _base()
    raw["quantization"]["candidates"][0]["scheme"] = "static-int8"
    with pytest.raises(BadInput, match="candidate 'dynamic-int8-s8': scheme 'static-int8' needs 'calibration"):
        load_profile(_write(tmp_path, yaml.safe_dump(raw)))


def test_s8_weights_on_avx2_need_the_7_bit_range_that_cannot_saturate(tmp_path):
    raw = _base()
    raw["quantization"]["candidates"][0]["reduce_range"] = False
    with pytest.raises(BadInput, match="candidate 'dynamic-int8-s8': s8 weights on avx2 without VNNI saturate.*"
                                       "reduce_range: true"):
        load_profile(_write(tmp_path, yaml.safe_dump(raw)))
    raw["isa"] = "avx512_vnni"  # VNNI's vpdpbusd adds into int32: full-range s8 weights are safe there
    assert load_profile(_write(tmp_path, yaml.safe_dump(raw))).quantization.candidates[0].weight_type == "s8"


def test_weight_type_is_refused_outside_integer_schemes(tmp_path):
    raw = _base()
    raw["quantization"]["candidates"][0] = {"name": "fp32-s8", "scheme": "fp32", "weight_type": "s8"}
    with pytest.raises(BadInput, match="'weight_type' / 'reduce_range' are for dynamic-int8 and static-int8"):
        load_profile(_write(tmp_path, yaml.safe_dump(raw)))


def test_unknown_target_lists_the_known_ones():
    with pytest.raises(BadInput, match="unknown target 'pi-zero'.*x86-avx2"):
        load_profile("pi-zero")


def test_profiles_are_frozen():
    with pytest.raises(Exception):
        load_profile("x86-avx2").threads = 4  # type: ignore[misc]
    assert isinstance(load_profile("mobile"), TargetProfile)
