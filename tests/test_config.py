from dataclasses import dataclass
from typing import Literal

import pytest

from learnlab.config import ConfigError, Interval, apply_overrides, from_dict, param, to_dict, validate


@dataclass(frozen=True)
class Inner:
    n_bits: int = param(10, Interval(1, None))
    k: int = param(3, Interval(1, "n_bits"))
    rate: float = param(0.5, Interval(0.0, 1.0, closed="left"))


@dataclass(frozen=True)
class Outer:
    seed: int = param(0, Interval(0, None))
    mode: Literal["a", "b"] = param("a")
    cap: int | None = param(None, Interval(1, None))
    sizes: tuple[int, ...] = param((1, 2), Interval(1, None))
    flag: bool = param(False)
    inner: Inner = Inner()


def test_overrides_parse_each_type_and_nest():
    cfg = apply_overrides(Outer(), ["inner.k=5", "mode=b", "cap=1e3", "sizes=3,4", "flag=true", "inner.rate=0.25"])
    assert cfg.inner.k == 5 and cfg.mode == "b" and cfg.cap == 1000 and cfg.sizes == (3, 4)
    assert cfg.flag is True and cfg.inner.rate == 0.25
    assert apply_overrides(cfg, ["cap=none"]).cap is None


@pytest.mark.parametrize("override, message", [
    ("inner.kk=1", "Unknown config key 'inner.kk' for Outer; did you mean 'inner.k'"),
    ("inner.k=0", "The 'inner.k' parameter of Inner must be an int in [1, n_bits=10]. Got 0."),
    ("inner.k=11", "The 'inner.k' parameter of Inner must be an int in [1, n_bits=10]. Got 11."),
    ("inner.k=2.5", "The 'inner.k' parameter must be an int. Got '2.5'."),
    ("inner.rate=1.0", "The 'inner.rate' parameter of Inner must be a float in [0, 1). Got 1.0."),
    ("inner.rate=nan", "The 'inner.rate' parameter of Inner must be a float in [0, 1). Got nan."),
    ("mode=c", "The 'mode' parameter must be one of 'a', 'b'. Got 'c'."),
    ("flag=maybe", "The 'flag' parameter must be a bool. Got 'maybe'."),
    ("cap=0", "The 'cap' parameter of Outer must be an int or None in [1, inf). Got 0."),
    ("sizes=1,0", "The 'sizes' parameter of Outer must be a tuple of ints in [1, inf). Got (1, 0)."),
    ("seed", "Override 'seed' is not of the form key=value."),
])
def test_bad_overrides_give_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as error:
        apply_overrides(Outer(), [override])
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_validate_rejects_wrong_python_types():
    with pytest.raises(ConfigError, match="'seed' parameter of Outer must be an int"):
        validate(Outer(seed=True))
    with pytest.raises(ConfigError, match="'inner' parameter of Outer must be a Inner"):
        validate(Outer(inner={"k": 1}))


def test_round_trip_through_a_dict():
    cfg = apply_overrides(Outer(), ["sizes=5,6", "inner.k=2"])
    assert from_dict(Outer, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="Unknown config key 'inner.bogus'"):
        from_dict(Outer, {**to_dict(cfg), "inner": {**to_dict(cfg)["inner"], "bogus": 1}})


def test_mutable_defaults_are_refused():
    with pytest.raises(TypeError):
        param([1, 2])
