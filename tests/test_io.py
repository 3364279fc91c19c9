"""io.write_csv writes exactly the bytes of ``df.to_csv(index=False, lineterminator="\\n",
date_format="%Y-%m-%d")``: differential tests of its fast path (io._fast_csv_text) against pandas, on
the derived tables of the committed default cohort, on awkward frames and on random ones."""

from __future__ import annotations

import decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respine_nb import config, derive, io

DATE_FORMAT = "%Y-%m-%d"


def pandas_csv(df: pd.DataFrame) -> str:
    return df.to_csv(index=False, lineterminator="\n", date_format=DATE_FORMAT)


def assert_same_csv(df: pd.DataFrame, fast: bool = True) -> None:
    """csv_text is to_csv's text, df is left as it was, and the fast path was (not) taken."""
    before = df.copy()
    assert io.csv_text(df) == pandas_csv(df)
    assert (io._fast_csv_text(df, DATE_FORMAT) is not None) == fast
    pd.testing.assert_frame_equal(df, before)


@pytest.fixture(scope="module")
def derived():
    """The derived tables of the committed default cohort, as a default run writes them."""
    return derive.derive_all(io.load_dataset(config.SYNTHETIC_DIR).tables, config.PRIMARY_VISIT)


def test_derived_tables_written_as_pandas_writes_them(derived, tmp_path):
    assert set(derived) == {"adsl", "adeff", "admri", "adtte", "adae", "adis", "adds", "adice"}
    for name, df in derived.items():
        path = io.write_csv(df, tmp_path / f"{name}.csv")
        assert path.read_bytes() == pandas_csv(df).encode("utf-8"), name
        assert_same_csv(df)  # their dtypes all take the fast path


TEXTS = [
    "plain",
    "",
    "a,b",
    'say "hi"',
    '"',
    '""',
    ",",
    "line\nbreak",
    "\n",
    "cr\rhere",
    "\r\n",
    " lead",
    "trail ",
    "  ",
    "\t tab",
    "ünïcødé ✓ 雪 🦴",
    "x" * 100_000,
    "a,b" * 1_000 + '"',
    "None",
    "nan",
    "NaN",
    "NA",
]
FLOATS = [
    1e-05,
    1e-4,
    0.0001234,
    1e16,
    1e15 + 0.3,
    -0.0,
    0.0,
    np.inf,
    -np.inf,
    0.1 + 0.2,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    float(2**53 + 1),
    123456789012345678.0,
    -1.5,
    np.nan,
    46.0,
]
INT64 = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0, -1, 7], dtype=np.int64)


def _col(values, n: int, dtype=None) -> pd.Series:
    """``values`` cycled to ``n`` rows."""
    return pd.Series([values[i % len(values)] for i in range(n)], dtype=dtype)


AWKWARD = {
    "texts": pd.DataFrame({"s": TEXTS, "n": range(len(TEXTS))}),
    "missing text": pd.DataFrame({"s": ["a", None, np.nan, pd.NA, "", "b,c"], "t": [None] * 6}),
    "floats": pd.DataFrame({"f": FLOATS, "g": FLOATS[::-1]}),
    "float32 and float16": pd.DataFrame(
        {"f32": np.array([0.1, 1e-5, np.nan, -0.0, 3.4e38], np.float32), "f16": np.array([0.1, 1, np.nan, -0.0, 6e4], np.float16)}
    ),
    "negative zero and NaN payloads": pd.DataFrame(
        {"f": np.array([0.0, -0.0, 0.0, np.nan, -np.nan, np.frombuffer(b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]], float)}
    ),
    "ints": pd.DataFrame(
        {
            "i64": INT64,
            "u64": np.array([2**64 - 1, 0, 2**63, 1, 5], np.uint64),
            "i8": np.array([-128, 127, 0, 1, 2], np.int8),
            "i32": np.array([-(2**31), 2**31 - 1, 0, 1, 2], np.int32),
        }
    ),
    "bools": pd.DataFrame({"b": [True, False, True], "ob": pd.Series([True, False, None], dtype=object)}),
    "mixed objects": pd.DataFrame(
        {
            "o": pd.Series(
                [
                    "a",
                    1,
                    2.5,
                    -0.0,
                    True,
                    None,
                    np.float64(1.5),
                    np.int64(3),
                    decimal.Decimal("1.10"),
                    decimal.Decimal("NaN"),
                    pd.Timestamp("2020-01-02"),
                    pd.NaT,
                    b"bytes",
                    ("t", 1),
                    'q,"',
                    float("nan"),
                    1e16,
                ],
                dtype=object,
            )
        }
    ).assign(k="k"),
    "one column with empty values": pd.DataFrame({"a": ["", None, "x", np.nan, "", '"']}),
    "one float column with missing": pd.DataFrame({"a": [np.nan, 1.0, np.nan]}),
    "one column named empty": pd.DataFrame({"": ["x", ""]}),
    "header to quote": pd.DataFrame({"a,b": [1], 'q"': ["x"], "": [None], "n\nl": [2.0], "ü": ["y"]}),
    "zero rows": pd.DataFrame(
        {"a": pd.Series([], dtype=object), "b": pd.Series([], dtype=float), "d": pd.Series([], dtype="datetime64[ns]")}
    ),
    "dates": pd.DataFrame(
        {
            "d": pd.to_datetime(["2018-04-09", None, "1850-12-31", "2262-04-11"]),
            "s": np.array(["2018-04-09T13:45", "1000-01-01", "NaT", "9999-12-31"], dtype="datetime64[s]"),
        }
    ),
    "nullable dtypes": pd.DataFrame(
        {
            "I": pd.array([1, None, -(2**63), 2**63 - 1], dtype="Int64"),
            "I8": pd.array([1, None, -128, 127], dtype="Int8"),
            "F": pd.array([1.5, None, -0.0, 1e16], dtype="Float64"),
            "F32": pd.array([0.1, None, 1e-5, 2.5], dtype="Float32"),
            "B": pd.array([True, None, False, True], dtype="boolean"),
            "S": pd.array(["a,b", None, "", "ü"], dtype="string"),
            "SA": pd.array(["a", None, '"', "x"], dtype="string[pyarrow]"),
        }
    ),
    "unmasked NaN in Float64": pd.DataFrame({"F": pd.arrays.FloatingArray(np.array([np.nan, 1.0]), np.array([False, True]))}),
    "sliced, with an index": pd.DataFrame(
        {"a": FLOATS, "b": [f"r{i}" for i in range(len(FLOATS))]}, index=list("abcdefghijklmnopqr")
    )
    .iloc[::3]
    .iloc[:, ::-1],
    "long": pd.DataFrame({"s": _col(["a", None, "b,c", "d"], 5_000), "f": _col(FLOATS, 5_000), "i": _col([1, 2, 3], 5_000)}),
}

FALLBACK = {
    "categorical": pd.DataFrame({"c": pd.Categorical(["a", None, "b"]), "s": ["x", "y", "z"]}),
    "categorical dates": pd.DataFrame({"c": pd.Categorical(pd.to_datetime(["2020-01-01", None, "2020-01-01"]))}),
    "dates with a time zone": pd.DataFrame({"d": pd.to_datetime(["2020-01-01", None]).tz_localize("Europe/Paris")}),
    "timedeltas": pd.DataFrame({"t": pd.to_timedelta(["1 day", None])}),
    "periods": pd.DataFrame({"p": pd.period_range("2020-01", periods=2, freq="M")}),
    "intervals": pd.DataFrame({"i": pd.interval_range(0, 2)}),
    "sparse": pd.DataFrame({"s": pd.arrays.SparseArray([0.0, np.nan, 1.5])}),
    "complex": pd.DataFrame({"c": [1 + 2j, np.nan]}),
    "arrow ints": pd.DataFrame({"a": pd.array([1, None], dtype="int64[pyarrow]")}),
    "MultiIndex columns": pd.DataFrame([[1, "a"]], columns=pd.MultiIndex.from_tuples([("x", "1"), ("x", "2")])),
    "duplicate column names": pd.DataFrame([[1, "a"]], columns=["x", "x"]),
    "non-str column names": pd.DataFrame({0: [1.5], 1: ["a"]}),
    "a NaN column name": pd.DataFrame([[1, 2]], columns=["a", np.nan]),
    "zero columns": pd.DataFrame(index=range(3)),
    "empty": pd.DataFrame(),
}


@pytest.mark.parametrize("name", AWKWARD)
def test_awkward_frames_fast_and_identical(name):
    assert_same_csv(AWKWARD[name])


@pytest.mark.parametrize("name", FALLBACK)
def test_other_frames_left_to_pandas(name):
    assert_same_csv(FALLBACK[name], fast=False)


def test_write_csv_is_atomic_and_exact(tmp_path):
    df = AWKWARD["texts"]
    path = io.write_csv(df, tmp_path / "sub" / "t.csv")
    assert path.read_bytes() == pandas_csv(df).encode("utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["t.csv"]  # no temp file left


# ---------------------------------------------------------------- random frames

_TEXT = st.text(alphabet=st.sampled_from(list(',"\n\r \tab1.-éü雪🦴') + ["\x00", "\u2028"]), max_size=6)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 5e-324, 1e16, 1e-5, 0.1 + 0.2])
_MISSING = st.sampled_from([None, np.nan, pd.NA])


def _column(kind: str, n: int):
    """A strategy for one column of ``n`` rows of ``kind``."""
    if kind == "text":
        return st.lists(_TEXT | _MISSING, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=object))
    if kind == "float":
        return st.lists(_FLOAT, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=float))
    if kind == "float32":
        return st.lists(st.floats(width=32), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=np.float32))
    if kind == "int":
        ints = st.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max)
        return st.lists(ints, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=np.int64))
    if kind == "bool":
        return st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=bool))
    if kind == "mixed":
        cell = _TEXT | _FLOAT | st.integers() | st.booleans() | _MISSING
        return st.lists(cell, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=object))
    if kind == "Int64":
        return st.lists(st.integers(-(2**63), 2**63 - 1) | st.none(), min_size=n, max_size=n).map(
            lambda v: pd.Series(v, dtype="Int64")
        )
    if kind == "Float64":
        return st.lists(st.floats(allow_nan=False) | st.none(), min_size=n, max_size=n).map(
            lambda v: pd.Series(v, dtype="Float64")
        )
    if kind == "string":
        return st.lists(_TEXT | st.none(), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="string"))
    days = st.integers(-100_000, 100_000) | st.none()  # around 1970, NaT for None
    return st.lists(days, min_size=n, max_size=n).map(
        lambda v: pd.Series([None if d is None else pd.Timestamp("1970-01-01") + pd.Timedelta(days=d) for d in v]).astype(
            "datetime64[ns]"
        )
    )


KINDS = ["text", "float", "float32", "int", "bool", "mixed", "Int64", "Float64", "string", "date"]


@st.composite
def frames(draw):
    n = draw(st.integers(0, 8))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))
    names = draw(st.lists(_TEXT, min_size=len(kinds), max_size=len(kinds), unique=True))
    return pd.DataFrame({name: draw(_column(kind, n)) for name, kind in zip(names, kinds)})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_random_frames_identical(df):
    assert_same_csv(df)
