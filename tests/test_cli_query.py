"""`orgscope query` runs one read-only SELECT over the store and nothing else (issue #13).

Each attack below ran on the code before orgscope/readonly_query.py: COPY wrote a file, ATTACH
created a database, read_text read /etc and INSTALL reached for the network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orgscope.cli import main
from orgscope.readonly_query import QueryRefused, check_select


def _query(config_file: Path, sql: str) -> int:
    return main(["--config", str(config_file), "query", sql, "--format", "csv"])


def test_a_select_still_answers(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _query(config_file, "with t as (select 41 + 1 as n) select n from t") == 0
    assert capsys.readouterr().out.split() == ["n", "42"]


def test_copy_to_a_file_is_refused(config_file: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "stolen.csv"
    assert _query(config_file, f"copy (select 1 as a) to '{target}'") == 2
    assert not target.exists()
    err = capsys.readouterr().err
    assert "COPY statement" in err and "one SELECT statement" in err


def test_copy_into_the_store_folder_is_refused(config_file: Path, tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "planted.csv"
    assert _query(config_file, f"copy (select 1 as a) to '{target}'") == 2
    assert not target.exists()


def test_attach_is_refused(config_file: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "other.duckdb"
    assert _query(config_file, f"attach '{database}' as other") == 2
    assert not database.exists()
    assert "ATTACH statement" in capsys.readouterr().err


def test_reading_a_file_outside_the_store_is_refused(
        config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    for sql in (f"select content from read_text('{secret}')",
                "select * from read_text('/etc/hostname')",
                f"select * from read_text('{tmp_path}/store/../secret.txt')",
                f"select * from glob('{tmp_path}/*')",
                f"select * from sniff_csv('{secret}')"):
        assert _query(config_file, sql) == 2, sql
        captured = capsys.readouterr()
        assert "hunter2" not in captured.out + captured.err
        assert "query refused" in captured.err and "no file outside the store" in captured.err


def test_install_and_load_are_refused(config_file: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    for sql in ("install httpfs", "load httpfs", "force install httpfs"):
        assert _query(config_file, sql) == 2, sql
        assert "statement: allowed is one SELECT" in capsys.readouterr().err


def test_a_url_in_a_select_is_refused_without_loading_an_extension(
        config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _query(config_file, "select * from read_csv('https://example.com/x.csv')") == 2
    assert "query refused" in capsys.readouterr().err


@pytest.mark.parametrize("sql", [
    "select 1; copy (select 1) to '/tmp/orgscope-x.csv'",
    "select 1; select 2",
    "select 1 /* ; */ ; set enable_external_access = true",
])
def test_exactly_one_statement(sql: str) -> None:
    with pytest.raises(QueryRefused, match="statements given"):
        check_select(sql)


@pytest.mark.parametrize("sql", [
    "set enable_external_access = true", "pragma version", "create table t as select 1",
    "explain select 1", "call duckdb_settings()", "detach other", "export database '/tmp/x'",
])
def test_only_select(sql: str) -> None:
    with pytest.raises(QueryRefused, match="allowed is one SELECT"):
        check_select(sql)


def test_a_second_statement_after_a_select_is_refused(
        config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "second.csv"
    assert _query(config_file, f"select 1; copy (select 1 as a) to '{target}'") == 2
    assert not target.exists()
    assert "2 statements given" in capsys.readouterr().err


def test_views_over_the_store_still_read(config_file: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime, timedelta

    from orgscope import wiring
    from testkit.collectors_sample import runs_frame

    store = wiring.open_store(wiring.load(config_file))
    end = datetime(2026, 11, 2, tzinfo=UTC)
    runs = runs_frame({"111111111111": (3, 1, 5)}, end - timedelta(hours=1), end)
    store.write("runs", runs, "cycle-1")
    assert _query(config_file, "select count(*) as n from runs") == 0
    assert capsys.readouterr().out.split() == ["n", str(len(runs))]


def test_csv_output_holds_no_formula(config_file: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A rule or tag named like a formula runs in the spreadsheet `query --format csv > x.csv`
    is opened in: text cells starting with = + - @ get a leading quote; numbers stay."""
    sql = ("select '=HYPERLINK(\"https://evil.example\",\"x\")' as rule, '@SUM(A1)' as team, "
           "-3 as n")
    assert main(["--config", str(config_file), "query", "--format", "csv", sql]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "\"'=HYPERLINK(\"\"https://evil.example\"\",\"\"x\"\")\",'@SUM(A1),-3"
