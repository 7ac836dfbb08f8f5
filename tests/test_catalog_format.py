"""The catalog document (`tenantdb seed --catalog FILE`): its JSON Schema,
and load_catalog's refusals that name what is wrong."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import psycopg
import pytest

from conftest import ROOT

CLI = [sys.executable, str(ROOT / "cli.py")]
SCHEMA = json.loads((ROOT / "seeds" / "catalog.schema.json").read_text())
CATALOG = json.loads((ROOT / "seeds" / "catalog.json").read_text())


def seed(dsn: str, document: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document))
    return subprocess.run(CLI + ["seed", "--dsn", dsn, "--catalog", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_the_shipped_catalog_follows_its_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(CATALOG, SCHEMA)


def test_a_misspelled_key_is_refused_by_the_schema_and_by_the_loader(dsn: str, tmp_path: Path) -> None:
    document = copy.deepcopy(CATALOG)
    pro = next(p for p in document["plans"] if p["key"] == "pro")
    pro["prise_minor"] = pro.pop("price_minor")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, SCHEMA)
    with psycopg.connect(dsn) as conn:
        before = conn.execute("select price_minor from catalog.plans where key = 'pro'").fetchone()[0]
    proc = seed(dsn, document, tmp_path)
    assert proc.returncode == 1
    assert 'SQLSTATE 22023' in proc.stderr and '("pro") has an unknown key "prise_minor"' in proc.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select price_minor from catalog.plans where key = 'pro'").fetchone()[0] == before


def test_a_constraint_failure_names_the_plan_and_the_feature(dsn: str, tmp_path: Path) -> None:
    document = copy.deepcopy(CATALOG)
    pro = next(p for p in document["plans"] if p["key"] == "pro")
    pro["features"]["max_records"]["limit"] = -5
    proc = seed(dsn, document, tmp_path)
    assert proc.returncode == 1
    assert 'plan "pro", feature "max_records"' in proc.stderr and "plan_features_limit_shape" in proc.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select limit_value from catalog.plan_features where plan_key = 'pro' and feature_key = 'max_records'"
                            ).fetchone()[0] == CATALOG["plans"][[p["key"] for p in CATALOG["plans"]].index("pro")]["features"]["max_records"]["limit"]


def test_a_bad_value_names_the_plan(dsn: str, tmp_path: Path) -> None:
    document = copy.deepcopy(CATALOG)
    next(p for p in document["plans"] if p["key"] == "business")["currency"] = "dollars"
    proc = seed(dsn, document, tmp_path)
    assert proc.returncode == 1 and 'plan "business"' in proc.stderr, proc.stderr


def test_verify_fails_without_an_active_free_plan(dsn: str) -> None:
    verify = CLI + ["verify", "--dsn", dsn, "--json"]
    assert json.loads(subprocess.run(verify, capture_output=True, text=True, cwd=ROOT).stdout)["ok"] is True
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update catalog.plans set is_active = false where key = 'free'")
    proc = subprocess.run(verify, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert [p["check"] for p in json.loads(proc.stdout)["problems"]] == ["catalog"]
