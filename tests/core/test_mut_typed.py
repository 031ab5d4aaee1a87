"""The dict -> dataclass converter (awml_harness/config/typed.py) on small dataclasses of
its own: every supported annotation accepts what it should, refuses the rest with the
dotted key and the allowed phrase, and to_builtin undoes it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.typed import convert, from_mapping, to_builtin


class Color(enum.Enum):
    RED = "red"
    BLUE = "Blue"


class Level(enum.Enum):
    LOW = 1


@dataclass(frozen=True)
class Inner:
    n: int = 1
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=list)
    table: dict[str, float] = field(default_factory=dict)
    anything: Any = None
    maybe: Optional[int] = None  # noqa: UP045 - the typing spelling is supported too
    either: Union[int, str] = 0  # noqa: UP007
    pair: tuple[int, str] = (0, "")
    color: Color = Color.RED
    mode: Literal["a", "B", 3, True] = "a"
    path: Path | None = None


@dataclass(frozen=True)
class Checked:
    low: int = 0
    high: int = 1

    def validate(self, key: str) -> None:
        if self.low > self.high:
            raise ConfigError(f"{key}.low" if key else "low", self.low, f"<= high ({self.high})")


@dataclass(frozen=True)
class Holder:
    checked: Checked = field(default_factory=Checked)


def err(tp, value, key="k") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        convert(value, tp, key)
    if info.value.key == key:  # an error about the value itself shows that value
        assert info.value.value is value
    return info.value


def test_scalars():
    assert convert(True, bool, "k") is True
    assert err(bool, 1).allowed == "true/false"
    assert err(bool, "true").allowed == "true/false"
    assert convert(3, int, "k") == 3
    assert convert(3.0, int, "k") == 3 and type(convert(3.0, int, "k")) is int
    assert err(int, 3.5).allowed == "an integer"
    assert err(int, True).allowed == "an integer"
    assert err(int, "3").allowed == "an integer"
    assert convert(2, float, "k") == 2.0 and type(convert(2, float, "k")) is float
    assert convert(0.5, float, "k") == 0.5
    for bad in (float("nan"), float("inf"), True, "1.0", None):
        assert err(float, bad).allowed == "a finite number"
    assert convert("s", str, "k") == "s"
    assert convert(Color.BLUE, str, "k") == "Blue"
    assert err(str, Level.LOW).allowed == "a string"
    assert err(str, 3).allowed == "a string"
    assert convert("a/b", Path, "k") == Path("a/b")
    assert convert(Path("/x"), Path, "k") == Path("/x")
    assert err(Path, "").allowed == "a path string"
    assert err(Path, 3).allowed == "a path string"
    obj = object()
    assert convert(obj, Any, "k") is obj
    assert convert(None, type(None), "k") is None
    assert err(type(None), 0).allowed == "None"


def test_errors_carry_key_and_value():
    e = err(int, "x", key="a.b[2]")
    assert (e.key, e.value) == ("a.b[2]", "x")


def test_literals_match_strings_case_insensitively_and_other_values_exactly():
    tp = Literal["a", "B", 3, True]
    assert convert("A", tp, "k") == "a"
    assert convert("b", tp, "k") == "B"
    assert convert(3, tp, "k") == 3
    assert convert(True, tp, "k") is True
    e = err(tp, 1)  # 1 == True but is not True
    assert e.allowed == "one of 'a', 'B', 3, True"
    assert err(tp, 3.0).allowed.startswith("one of")  # 3.0 == 3 but is not an int
    assert err(tp, "c").allowed.startswith("one of")
    assert convert(Color.RED, Literal["red"], "k") == "red"  # an enum member by its value


def test_enums_by_member_or_value_in_any_case():
    assert convert(Color.RED, Color, "k") is Color.RED
    assert convert("RED", Color, "k") is Color.RED
    assert convert("blue", Color, "k") is Color.BLUE
    e = err(Color, "green")
    assert e.allowed == "one of 'red', 'Blue'"
    assert err(Level, 1).allowed == "one of 1"  # only strings are matched by value


def test_optional_and_union():
    assert convert(None, Optional[int], "k") is None  # noqa: UP045
    assert convert(None, int | None, "k") is None
    assert convert(4, int | None, "k") == 4
    # one candidate left: its own error, with its own phrase
    assert err(int | None, "x").allowed == "an integer"
    # several candidates: the union is described
    assert convert("x", Union[int, str], "k") == "x"  # noqa: UP007
    assert convert(2, int | str, "k") == 2
    assert err(int | str, 1.5).allowed == "an integer or a string"
    assert err(int | str, None).allowed == "an integer or a string"
    assert err(int | Path | None, 1.5).allowed == "an integer or a path string or None"


def test_sequences():
    assert convert([1, 2], tuple[int, ...], "k") == (1, 2)
    assert convert((1, 2), list[int], "k") == [1, 2]
    assert convert([1, "a"], tuple[int, str], "k") == (1, "a")
    assert convert([1, "a"], tuple, "k") == (1, "a")
    assert convert((1, "a"), list, "k") == [1, "a"]
    assert isinstance(convert([1], tuple[int, ...], "k"), tuple)
    assert isinstance(convert((1,), list[int], "k"), list)
    e = err(tuple[int, ...], [1, "x"], key="s")
    assert (e.key, e.allowed) == ("s[1]", "an integer")
    e = err(list[int], [0, 1, "x"], key="s")
    assert e.key == "s[2]"
    e = err(tuple[int, str], [1, 2], key="p")
    assert (e.key, e.allowed) == ("p[1]", "a string")
    e = err(tuple[int, str], [1], key="p")
    assert (e.key, e.allowed) == ("p", "a list of 2 items (an integer, a string)")
    assert err(tuple[int, str], [1, "a", 2]).allowed == "a list of 2 items (an integer, a string)"
    assert err(tuple[int, ...], "12").allowed == "a list of an integer"
    assert err(list[str], {"a": 1}).allowed == "a list of a string"


def test_mappings():
    assert convert({"a": 1}, dict[str, float], "k") == {"a": 1.0}
    assert convert({1: "x"}, dict, "k") == {1: "x"}
    assert convert({"a": 1}, Mapping[str, int], "k") == {"a": 1}
    assert convert({Color.RED: 1}, dict[str, int], "k") == {"red": 1}
    e = err(dict[str, float], {"ok": 1.0, "bad": "x"}, key="t")
    assert (e.key, e.allowed) == ("t.bad", "a finite number")
    e = err(dict[int, float], {"x": 1.0}, key="t")
    assert (e.key, e.allowed) == ("t.x", "an integer")
    assert err(dict[str, float], [1]).allowed == "a mapping of a number"
    assert err(dict, [1]).allowed == "a mapping"
    assert err(Mapping, 3).allowed == "a mapping"


def test_unsupported_annotations_are_programming_errors():
    with pytest.raises(TypeError, match="unsupported annotation .* at k.x"):
        convert(1, bytes, "k.x")


def test_nested_dataclasses_keys_and_defaults():
    o = from_mapping(Outer, {"name": "n", "inner": {"n": 2.0, "tags": ["x"]}, "items": [{"n": 3}, {}],
                             "table": {"a": 1}, "maybe": 5, "either": "s", "pair": [1, "p"], "color": "blue",
                             "mode": True, "path": "f.txt", "anything": {"x": [1]}})
    assert o.inner == Inner(2, ("x",)) and o.items == [Inner(3), Inner(1)]
    assert o.table == {"a": 1.0} and o.maybe == 5 and o.either == "s" and o.pair == (1, "p")
    assert o.color is Color.BLUE and o.mode is True and o.path == Path("f.txt") and o.anything == {"x": [1]}
    d = from_mapping(Outer, {"name": "n"})
    assert d == Outer("n")
    same = Inner(7)
    assert from_mapping(Outer, {"name": "n", "inner": same}).inner is same
    assert from_mapping(Inner, None) == Inner()


def test_from_mapping_errors_name_the_dotted_key():
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {"name": "n", "inner": {"nn": 1}})
    e = info.value
    assert e.key == "inner.nn" and e.value == 1
    assert e.allowed == "no such key; known keys under 'inner': ['n', 'tags']"
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {"nme": "n"})
    assert info.value.key == "nme" and "known keys under '<root>': ['anything', 'color'," in info.value.allowed
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {})
    e = info.value
    assert (e.key, e.value) == ("name", None) and e.allowed == "a value (a string); this key is required"
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {"name": "n", "items": [{}, {"n": "x"}]})
    assert info.value.key == "items[1].n"
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {"name": "n", "inner": 3})
    assert info.value.key == "inner" and info.value.allowed == "a mapping with keys ['n', 'tags']"
    with pytest.raises(ConfigError) as info:
        from_mapping(Inner, [1])
    assert info.value.key == "Inner" and info.value.allowed == "a mapping with keys ['n', 'tags']"
    with pytest.raises(ConfigError) as info:
        from_mapping(Inner, {3: 1})
    assert info.value.key == "3"


def test_odd_keys_are_shown_quoted():
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {"name": "n", "inner": {"has space": 1}})
    assert info.value.key == "inner['has space']"
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {"name": "n", "inner": {"": 1}})
    assert info.value.key == "inner['']"
    with pytest.raises(ConfigError) as info:
        from_mapping(Outer, {"name": "n", "table": {"heat*/x[0]:a-b.c>d?": "x"}})
    assert info.value.key == "table.heat*/x[0]:a-b.c>d?"  # glob-ish output paths read plain


def test_enum_members_as_keys_are_their_values():
    class Key(enum.Enum):
        N = "n"

    assert from_mapping(Inner, {Key.N: 4}).n == 4


def test_validate_runs_with_the_key_of_the_section():
    with pytest.raises(ConfigError) as info:
        from_mapping(Holder, {"checked": {"low": 3, "high": 2}})
    assert info.value.key == "checked.low" and info.value.allowed == "<= high (2)"
    with pytest.raises(ConfigError) as info:
        from_mapping(Checked, {"low": 3, "high": 2})
    assert info.value.key == "low"
    assert from_mapping(Holder, {"checked": {"low": 1, "high": 2}}).checked == Checked(1, 2)


def test_to_builtin_gives_json_ready_data():
    o = Outer("n", inner=Inner(2, ("x",)), items=[Inner(3)], table={"a": 1.0}, color=Color.BLUE,
              path=Path("/p"), pair=(1, "q"), anything={Color.RED: (Path("a"), Level.LOW)})
    b = to_builtin(o)
    assert b == {"name": "n", "inner": {"n": 2, "tags": ["x"]}, "items": [{"n": 3, "tags": []}],
                 "table": {"a": 1.0}, "anything": {"red": ["a", 1]}, "maybe": None, "either": 0,
                 "pair": [1, "q"], "color": "Blue", "mode": "a", "path": "/p"}
    assert to_builtin({1: 2}) == {"1": 2}
    assert to_builtin(Inner) is Inner  # a class is not an instance
    assert to_builtin("s") == "s" and to_builtin(None) is None


def test_a_new_dataclass_is_converted_on_first_sight():
    @dataclass(frozen=True)
    class Fresh:
        n: int = 0

    assert from_mapping(Fresh, {"n": 2}) == Fresh(2)
    assert from_mapping(Fresh, {"n": 3}) == Fresh(3)  # and again, from the cache


def test_required_keys_describe_what_they_take():
    @dataclass(frozen=True)
    class Needs:
        any_: Any
        flag: bool
        blob: bytes

    with pytest.raises(ConfigError) as info:
        from_mapping(Needs, {})
    assert info.value.allowed == "a value (any value); this key is required"
    with pytest.raises(ConfigError) as info:
        from_mapping(Needs, {"any_": 1})
    assert info.value.allowed == "a value (true/false); this key is required"
    with pytest.raises(ConfigError) as info:
        from_mapping(Needs, {"any_": 1, "flag": True})
    assert info.value.allowed == "a value (bytes); this key is required"


def test_none_listed_first_in_a_union_does_not_hide_the_rest():
    assert convert(3, Union[None, int], "k") == 3  # noqa: UP007


def test_literal_numbers_match_by_value_and_type_not_identity():
    big = int("1000")  # a different int object than the literal's
    assert convert(big, Literal[1000], "k") == 1000
    assert convert(float("2.5"), Literal[2.5], "k") == 2.5


def test_enum_keys_of_typed_mappings_are_their_values():
    assert convert({Color.RED: 1}, dict[Any, int], "k") == {"red": 1}
    e = err(dict[str, int], {Color.RED: "x"}, key="t")
    assert e.key == "t.red"


def test_the_bad_value_is_shown_whatever_the_annotation():
    for tp, value in ((type(None), 0), (int | str, 1.5), (Literal["a"], "b"), (Color, "green"), (tuple[int, str], [1]),
                      (list[int], "x"), (dict[str, int], [1]), (bool, 1), (float, "x"), (str, 1), (Path, 1)):
        err(tp, value)
    data = [1]
    with pytest.raises(ConfigError) as info:
        from_mapping(Inner, data)
    assert info.value.value is data
