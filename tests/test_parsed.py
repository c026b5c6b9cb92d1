"""Whether target/manifest.json is current beyond file times: the files a parse saw (a deleted file, a file
moved with its time kept) and the env vars it was parsed under, in the one walk that finds the newest file.

dbt's parse is faked here (it only rewrites the manifest, as a parse that changes nothing would): the
rules are about when dbtassets asks for one. test_convergence.py shows the same with real dbt.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from dbtassets.model.parsed import NAME, ParseRecord, describe_changes, forget_partial_parse, read_record
from dbtassets.model.project import load_project
from dbtassets.model.snapshot import Snapshot, load_snapshot
from dbtassets.model.targets import resolve_targets
from dbtassets.model.values import env_digest


def load(project: Path, parsed: list[str], cli_vars: dict[str, Any] | None = None) -> Snapshot:
    """Load ``project`` as dbtassets does (with ``--vars`` ``cli_vars``), noting in ``parsed`` why each parse was
    asked for."""
    dbt = load_project(project)

    def parse(why: str) -> None:
        parsed.append(why)
        os.utime(dbt.manifest_path)  # dbt wrote it anew

    return load_snapshot(dbt, None, parse, resolve_targets(dbt, None, None), cli_vars=cli_vars)


def age(project: Path, seconds: float) -> None:
    """Make every file of the project (and its manifest) ``seconds`` old, in order: files, then the manifest."""
    then = time.time() - seconds
    for path in project.rglob("*"):
        os.utime(path, (then, then), follow_symlinks=False)
    os.utime(project / "target/manifest.json", (then + 1, then + 1))


def test_an_unchanged_project_is_not_parsed_and_its_files_are_recorded_once(project_dir: Path) -> None:
    parsed: list[str] = []
    load(project_dir, parsed)
    record = read_record(load_project(project_dir))
    assert record is not None and "models/marts/dim_customer.sql" in record.files
    assert "profile:profiles.yml" in record.files
    load(project_dir, parsed)
    assert parsed == []


def test_status_walks_each_directory_once(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load(project_dir, [])
    scanned: list[str] = []
    real = os.scandir

    def counting(path: str) -> Any:
        scanned.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    load(project_dir, [])
    assert scanned and len(scanned) == len(set(scanned))


def test_a_deleted_model_and_its_yaml_are_parsed_again(project_dir: Path) -> None:
    parsed: list[str] = []
    load(project_dir, parsed)
    (project_dir / "models/marts/dim_customer.sql").unlink()
    (project_dir / "models/marts/_marts.yml").unlink()
    load(project_dir, parsed)
    assert len(parsed) == 1 and "was parsed before models/marts/_marts.yml was removed, " \
                                  "models/marts/dim_customer.sql was removed" in parsed[0], parsed
    load(project_dir, parsed)
    assert len(parsed) == 1  # the parse was recorded


def test_a_model_moved_with_its_time_kept_is_parsed_again(project_dir: Path) -> None:
    parsed: list[str] = []
    load(project_dir, parsed)
    (project_dir / "models/reporting").mkdir()
    os.rename(project_dir / "models/marts/fact_sales.sql", project_dir / "models/reporting/fact_sales.sql")
    load(project_dir, parsed)
    assert parsed == [f"{project_dir}/target/manifest.json was parsed before models/marts/fact_sales.sql was "
                      "removed, models/reporting/fact_sales.sql was added"]


def test_a_changed_profile_is_parsed_again(project_dir: Path) -> None:
    parsed: list[str] = []
    load(project_dir, parsed)
    profiles = project_dir / "profiles.yml"
    stat = profiles.stat()
    profiles.write_text(profiles.read_text().replace("threads: 4", "threads: 4\n      schema: analytics", 1))
    os.utime(profiles, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with its time kept
    load(project_dir, parsed)
    assert len(parsed) == 1 and "profile:profiles.yml changed" in parsed[0], parsed


def test_a_manifest_a_later_dbt_command_wrote_is_trusted_unless_a_directory_changed_after_it(
        project_dir: Path) -> None:
    parsed: list[str] = []
    load(project_dir, parsed)
    stg_orders = project_dir / "models/staging/stg_orders.sql"
    stg_orders.write_text(stg_orders.read_text() + "\n-- reviewed\n")
    age(project_dir, 60)  # then `dbt build` wrote the manifest from the edited file
    load(project_dir, parsed)
    assert parsed == []
    (project_dir / "models/staging/stg_customers.sql").unlink()  # after that build
    load(project_dir, parsed)
    assert len(parsed) == 1 and "models/staging/stg_customers.sql was removed" in parsed[0], parsed


def test_an_env_var_the_selected_target_reads_is_followed_and_another_targets_is_not(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    load(project_dir, parsed)
    monkeypatch.setenv("SHOPFLOW_PG_HOST", "db.example.com")  # the pg target's: dev's manifest is unchanged
    load(project_dir, parsed)
    assert parsed == []
    monkeypatch.setenv("SHOPFLOW_DUCKDB", "shopflow.duckdb")  # dev's, set to its default: still another value
    load(project_dir, parsed)
    assert parsed == [f"{project_dir}/target/manifest.json was parsed with another value of the environment "
                      "variable SHOPFLOW_DUCKDB"]


def test_an_env_var_in_the_projects_yaml_is_followed_and_a_secret_is_kept_only_as_a_hash(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = project_dir / "models/staging/_sources.yml"
    sources.write_text(sources.read_text().replace("  - name: raw\n", "  - name: raw\n    schema: \"{{ env_var("
                                                   "'DBT_ENV_SECRET_RAW_SCHEMA', 'main') }}\"\n", 1))
    monkeypatch.setenv("DBT_ENV_SECRET_RAW_SCHEMA", "s3cret-value")
    parsed: list[str] = []
    load(project_dir, parsed)  # parsed: the YAML is newer than the manifest
    assert len(parsed) == 1
    monkeypatch.setenv("DBT_ENV_SECRET_RAW_SCHEMA", "another-s3cret")
    load(project_dir, parsed)
    assert len(parsed) == 2 and parsed[1].endswith("environment variable DBT_ENV_SECRET_RAW_SCHEMA"), parsed
    assert b"s3cret" not in (project_dir / "target" / NAME).read_bytes()


def test_without_a_record_a_file_removed_after_the_manifest_is_parsed_again(project_dir: Path) -> None:
    """A manifest from the user's own `dbt parse` (or an older dbtassets): the directories' times tell."""
    (project_dir / "models/marts/dim_customer.sql").unlink()
    parsed: list[str] = []
    load(project_dir, parsed)
    assert parsed == [f"{project_dir}/target/manifest.json is older than a change in {project_dir}/models/marts "
                      "(a file added, removed or renamed)"]


def test_other_vars_are_parsed_again_and_kept_only_as_a_hash(project_dir: Path) -> None:
    manifest = project_dir / "target/manifest.json"
    parsed: list[str] = []
    load(project_dir, parsed, {})
    assert parsed == []
    load(project_dir, parsed, {"password": "s3cret-value"})
    load(project_dir, parsed, {"password": "s3cret-value"})
    assert parsed == [f"{manifest} was parsed with other --vars"]
    assert b"s3cret" not in (project_dir / "target" / NAME).read_bytes()
    load(project_dir, parsed, {})
    assert parsed[1:] == [f"{manifest} was parsed with --vars, given no more"]


def test_the_env_vars_of_unchanged_files_stay_followed_and_an_edited_files_are_read_again(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record keeps each file's env vars and reads again only the files that changed: both halves count."""
    sources, orders = project_dir / "models/staging/_sources.yml", project_dir / "models/staging/stg_orders.sql"
    sources.write_text(sources.read_text().replace("  - name: raw\n", "  - name: raw\n    schema: \"{{ env_var("
                                                   "'RAW_A', 'main') }}\"\n", 1))
    monkeypatch.setenv("RAW_A", "one")
    monkeypatch.setenv("RAW_B", "one")
    parsed: list[str] = []
    load(project_dir, parsed)
    orders.write_text(orders.read_text() + "\n-- another file changed: the record is written again\n")
    load(project_dir, parsed)
    monkeypatch.setenv("RAW_A", "two")  # the unchanged YAML's env var is still followed
    load(project_dir, parsed)
    assert len(parsed) == 3 and parsed[2].endswith("environment variable RAW_A"), parsed
    sources.write_text(sources.read_text().replace("'RAW_A'", "'RAW_B'"))  # the edited YAML is read again
    load(project_dir, parsed)
    monkeypatch.setenv("RAW_B", "two")
    load(project_dir, parsed)
    assert len(parsed) == 5 and parsed[4].endswith("environment variable RAW_B"), parsed
    monkeypatch.setenv("RAW_A", "three")  # no file reads it any more
    monkeypatch.setenv("RAW_B", "three")
    sources.write_text(sources.read_text().replace("'RAW_B', 'main'", "'RAW_B', env_var('RAW_A', 'main')"))
    load(project_dir, parsed)
    monkeypatch.setenv("RAW_A", "four")
    monkeypatch.setenv("RAW_B", "four")
    load(project_dir, parsed)
    assert parsed[-1].endswith("environment variables RAW_A, RAW_B"), parsed


def test_the_same_vars_in_another_order_are_not_parsed_again_and_other_values_are(project_dir: Path) -> None:
    import datetime

    parsed: list[str] = []
    for cli_vars in ({"a": 1, "b": datetime.date(2024, 1, 1)}, {"b": datetime.date(2024, 1, 1), "a": 1}, {"a": 2},
                     {"a": 3}):
        load(project_dir, parsed, cli_vars)
    # the first load makes the record (the manifest is current); then only the other values parse again
    assert parsed == [f"{project_dir / 'target/manifest.json'} was parsed with other --vars"] * 2


def test_a_change_says_the_first_few_and_how_many_more() -> None:
    before = {f"models/m{i}.sql": (1, 1) for i in range(5)}
    after = {f"models/m{i}.sql": (2, 2) for i in range(5)}
    assert describe_changes(before, after) == ("models/m0.sql changed, models/m1.sql changed, models/m2.sql changed "
                                               "and 2 more")
    assert describe_changes(before, {**before, "models/m4.sql": (2, 2), "models/m3.sql": (2, 2)}) == \
        "models/m3.sql changed, models/m4.sql changed"
    four = {**before, **{f"models/m{i}.sql": (2, 2) for i in range(4)}}
    assert describe_changes(before, four).endswith("and 1 more")
    three = {**before, **{f"models/m{i}.sql": (2, 2) for i in range(3)}}
    assert describe_changes(before, three) == "models/m0.sql changed, models/m1.sql changed, models/m2.sql changed"


def test_a_record_with_an_env_var_whose_value_is_the_same_is_current() -> None:
    env = {"DBT_SCHEMA": env_digest("DBT_SCHEMA", "analytics")}
    record = ParseRecord({"models/a.sql": (1, 1)}, env, {}, 5)
    manifest = os.stat_result((0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    now = {"models/a.sql": (1, 1)}
    assert record.why_stale(now, manifest, 0.0, ["DBT_SCHEMA"], {"DBT_SCHEMA": "analytics"}) is None
    assert record.why_stale(now, manifest, 0.0, ["DBT_SCHEMA"], {"DBT_SCHEMA": "staging"}) == (
        "was parsed with another value of the environment variable DBT_SCHEMA")
    assert record.why_stale(now, manifest, 0.0, ["DBT_SCHEMA"], {}) == (
        "was parsed with another value of the environment variable DBT_SCHEMA")


def test_forgetting_a_partial_parse_that_is_not_there_is_nothing(project_dir: Path) -> None:
    dbt = load_project(project_dir)
    dbt.partial_parse_path.unlink(missing_ok=True)
    forget_partial_parse(dbt)  # no error: the next parse is a full one either way
    dbt.partial_parse_path.write_bytes(b"saved")
    forget_partial_parse(dbt)
    assert not dbt.partial_parse_path.exists()


def test_a_callers_manifest_is_never_taken_as_edited_during_a_build(project_dir: Path) -> None:
    dbt = load_project(project_dir)
    given = load_snapshot(dbt, dbt.manifest_path, lambda why: None, resolve_targets(dbt, None, None))
    assert given.loaded_at is None
    model = project_dir / "models/marts/dim_customer.sql"
    model.write_text(model.read_text() + "\n-- edited while it built\n")
    built = frozenset(given.graph.assets)
    assert given.edited_since_load(built) == (frozenset(), [])  # its files are not what it was loaded from
    own = load(project_dir, [])  # the project's own manifest, parsed before the edit: the edit is seen
    assert own.loaded_at is not None
    model.write_text(model.read_text() + "-- edited again\n")
    os.utime(model, (own.loaded_at + 5, own.loaded_at + 5))
    edited, changed = own.edited_since_load(built)
    assert changed == [model] and {own.graph.assets[uid].name for uid in edited} == {"dim_customer"}


def test_a_profile_that_is_not_there_is_left_out_of_the_files() -> None:
    from types import SimpleNamespace

    from dbtassets.model.parsed import files_now

    walk = SimpleNamespace(entries={"models/a.sql": (1, 2)})
    assert files_now(None, walk, Path("/nonexistent/profiles.yml")) == {"models/a.sql": (1, 2)}  # type: ignore[arg-type]


@pytest.mark.parametrize("stored", [
    (1, {}, {}, {}, 0, ""),  # another format
    ("FORMAT", [], {}, {}, 0, ""),  # files not a mapping
    ("FORMAT", {}, {}, {}, "0", ""),  # the manifest's time not a number
    ("FORMAT", {}, {}, {}, 0, 5),  # --vars not a digest
])
def test_a_record_of_another_shape_is_no_record(project_dir: Path, stored: tuple[Any, ...]) -> None:
    import marshal

    from dbtassets.model.parsed import FORMAT

    dbt = load_project(project_dir)
    dbt.target_path.mkdir(exist_ok=True)
    (dbt.target_path / NAME).write_bytes(marshal.dumps((FORMAT, {}, {}, {}, 0, "")))
    assert read_record(dbt) == ParseRecord({}, {}, {}, 0, "")  # the right shape reads back
    (dbt.target_path / NAME).write_bytes(marshal.dumps(tuple(FORMAT if part == "FORMAT" else part
                                                             for part in stored)))
    assert read_record(dbt) is None


def test_a_record_reads_env_vars_in_sql_and_yaml_only_and_reuses_what_an_unchanged_file_read(
        project_dir: Path) -> None:
    from dbtassets.model.parsed import write_record

    dbt = load_project(project_dir)
    dbt.target_path.mkdir(exist_ok=True)
    (project_dir / "seeds/notes.csv").write_text("note\n\"{{ env_var('IN_A_SEED') }}\"\n")  # never rendered
    (project_dir / "models/reads.sql").write_text("select '{{ env_var('IN_SQL') }}' as x\n")
    (project_dir / "models/kept.sql").write_text("select 1 as x\n")  # now; it read KEPT when last seen
    (project_dir / "models/latin.sql").write_bytes(b"select '\xe9' as x, '{{ env_var(\"IN_LATIN\") }}' as y\n")
    files = {"seeds/notes.csv": (1, 1), "models/gone.sql": (9, 9),  # a seed first, a file deleted since the walk
             "models/reads.sql": (2, 2), "models/kept.sql": (3, 3), "models/latin.sql": (4, 4)}  # not UTF-8
    previous = ParseRecord({"models/kept.sql": (3, 3)}, {}, {"models/kept.sql": ("KEPT",)}, 0)
    write_record(dbt, files, (), previous, {"IN_SQL": "1"})
    record = read_record(dbt)
    assert record is not None and record.vars == ""
    assert record.env_names == {"models/reads.sql": ("IN_SQL",), "models/kept.sql": ("KEPT",),
                                "models/latin.sql": ("IN_LATIN",)}
    assert record.env == {"IN_SQL": env_digest("IN_SQL", "1"), "KEPT": env_digest("KEPT", None),
                          "IN_LATIN": env_digest("IN_LATIN", None)}
