"""The KQL interpreter of the simulated Log Analytics workspace (pure: no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from irflow.sim.loganalytics import kql

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SCHEMA = [("TimeGenerated", "datetime"), ("Ip", "string"), ("Op", "string"), ("Size", "long"), ("Ok", "bool")]
ROWS = [
    {
        "TimeGenerated": NOW - timedelta(minutes=5),
        "Ip": "198.51.100.23:1",
        "Op": "GetBlob",
        "Size": 10,
        "Ok": True,
    },
    {
        "TimeGenerated": NOW - timedelta(minutes=70),
        "Ip": "198.51.100.23:2",
        "Op": "GetBlob",
        "Size": 30,
        "Ok": True,
    },
    {"TimeGenerated": NOW - timedelta(days=2), "Ip": "10.0.0.4:9", "Op": "PutBlob", "Size": 5, "Ok": False},
    {
        "TimeGenerated": NOW - timedelta(days=9),
        "Ip": "10.0.0.4:9",
        "Op": "ListBlobs",
        "Size": None,
        "Ok": True,
    },
]


def run(query: str) -> tuple[list[str], list[list]]:
    schema, rows = kql.execute(query, lambda name: (SCHEMA, ROWS) if name == "T" else None, NOW)
    names = [n for n, _ in schema]
    return names, [[r.get(n) for n in names] for r in rows]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("Op == 'GetBlob'", 2),
        ("Op != 'GetBlob'", 2),
        ("Op =~ 'getblob'", 2),
        ("Op !~ 'getblob'", 2),
        ("Size > 5", 2),
        ("Size >= 5", 3),
        ("Size < 30 and Size <= 10", 2),
        ("Op in ('PutBlob', 'ListBlobs')", 2),
        ("Op !in ('PutBlob', 'ListBlobs')", 2),
        ("Ip has '198.51.100.23'", 2),
        ("Ip has '198.51'", 2),  # whole terms in sequence
        ("Ip has '198.5'", 0),  # '5' is not a whole term
        ("Op contains 'blob'", 4),
        ("Op contains_cs 'blob'", 0),
        ("Op startswith 'get'", 2),
        ("Op endswith 'blobs'", 1),
        ("Op !contains 'put'", 3),
        ("TimeGenerated > ago(1h)", 1),
        ("TimeGenerated between_not_supported", None),
        ("TimeGenerated >= ago(7d) or Op == 'ListBlobs'", 4),
        ("not(Ok)", 1),
        ("TimeGenerated > datetime(2026-02-28T00:00:00Z)", 3),
        ("TimeGenerated < now(-1d)", 2),
        ("isnull(Size)", 1),
        ("isnotempty(Ip) and Ok == true", 3),
        ("(Op == 'GetBlob' or Op == 'PutBlob') and Size > 9", 2),
    ],
)
def test_where(where: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(kql.KqlError):
            run(f"T | where {where}")
        return
    _, rows = run(f"T | where {where}")
    assert len(rows) == expected


def test_has_matches_whole_terms() -> None:
    _, rows = run("T | where Ip has '10.0.0.4' | project Ip")
    assert len(rows) == 2
    _, rows = run("T | where Op has 'Get' | project Op")
    assert rows == []  # 'Get' is not a term of 'GetBlob'


def test_project_extend_order_take() -> None:
    names, rows = run(
        "T | extend Kb = Size * 2, Hour = bin(TimeGenerated, 1h) | project Op, Kb | order by Kb asc"
    )
    assert names == ["Op", "Kb"]
    assert rows == [["ListBlobs", None], ["PutBlob", 10], ["GetBlob", 20], ["GetBlob", 60]]
    names, rows = run("T | order by Size desc | take 2 | project Size")
    assert rows == [[30], [10]]
    assert run("T | top 1 by TimeGenerated asc | project Op")[1] == [["ListBlobs"]]
    assert run("T | sort by Op asc, Size desc | limit 2 | project Op, Size")[1] == [
        ["GetBlob", 30],
        ["GetBlob", 10],
    ]


def test_summarize() -> None:
    names, rows = run(
        "T | summarize n = count(), s = sum(Size), lo = min(Size), hi = max(Size), ips = dcount(Ip),"
        " a = avg(Size),"
        " ok = countif(Ok) by Op | order by Op asc"
    )
    assert names == ["Op", "n", "s", "lo", "hi", "ips", "a", "ok"]
    assert rows == [
        ["GetBlob", 2, 40, 10, 30, 2, 20.0, 2],
        ["ListBlobs", 1, None, None, None, 1, None, 1],
        ["PutBlob", 1, 5, 5, 5, 1, 5.0, 0],
    ]
    assert run("T | summarize count()") == (["count_"], [[4]])
    assert run("T | where Op == 'none' | summarize count()") == (["count_"], [[0]])
    assert run("T | where Op == 'none' | summarize count() by Op") == (["Op", "count_"], [])
    names, rows = run("T | summarize count() by bin(TimeGenerated, 1d) | order by TimeGenerated asc")
    assert names == ["TimeGenerated", "count_"] and [r[1] for r in rows] == [1, 1, 2]
    assert rows[0][0] == datetime(2026, 2, 21, tzinfo=UTC)
    assert run("T | count") == (["Count"], [[4]])
    assert run("T | distinct Op | order by Op asc")[1] == [["GetBlob"], ["ListBlobs"], ["PutBlob"]]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "let x = 1; T",
        "T | join (T) on Op",
        "T | parse Ip with a ':' b",
        "T | project-away Ip",
        "T | where Op matches regex 'x'",
        "T | where Op == 'x",
        "T | where Size == 'ten'",
        "T | where Missing == 1",
        "T | summarize count() by Missing",
        "T | summarize Size",
        "T | where count() > 1",
        "T | where strcat(Op, Ip) == ''",
        "T | take ten",
        "T | where Op == 'a' extra",
        "T | where props.x == 1",
        "Nope",
        "T | where Size + Op == 1",
        "T | order by Size nulls last",
    ],
)
def test_refuses_what_it_does_not_support(query: str) -> None:
    with pytest.raises(kql.KqlError) as caught:
        run(query)
    assert caught.value.message


def test_tokenizer() -> None:
    kinds = [
        (t.kind, t.value) for t in kql.tokenize("T | where x >= 7d and y != @'a\\b' // comment\n| take 5")
    ]
    assert ("timespan", timedelta(days=7)) in kinds
    assert ("string", "a\\b") in kinds
    assert ("op", ">=") in kinds and ("op", "!=") in kinds
    assert kinds[-1] == ("end", None)
    assert kql.tokenize("datetime(2026-03-01)")[0].value == datetime(2026, 3, 1, tzinfo=UTC)


def test_wire_values() -> None:
    assert kql.wire_value(datetime(2026, 3, 1, 12, tzinfo=UTC), "datetime") == "2026-03-01T12:00:00Z"
    assert kql.wire_value(None, "string") == ""
    assert kql.wire_value(None, "long") is None
    assert kql.wire_value(timedelta(days=1, hours=2), "timespan") == "1.02:00:00"
    assert kql.wire_value(3, "real") == 3.0
