"""pyproject.toml stays in step with the pinned requirements and ships what the code reads.

requirements.txt and requirements-dev.txt pin the exact set `make` installs; pyproject.toml
declares the same names, each with its pin as the lower bound, so an install from the wheel
resolves to versions at least as new as the tested ones.
"""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from orgscope.iam_templates import (
    HEAL_ROLE_TEMPLATE,
    IAM_DIR,
    MANAGEMENT_READ_ROLE_TEMPLATE,
    READ_ROLE_TEMPLATE,
)

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def versions(lines: list[str], operator: str, where: str) -> dict[str, tuple[frozenset[str], str]]:
    """name -> (extras, version) of each requirement line, every one exactly ``operator`` X."""
    found = {}
    for line in lines:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == operator, f"{where}: {line} is not '{operator}' a version"
        found[canonicalize_name(requirement.name)] = (frozenset(requirement.extras),
                                                      spec.version)
    return found


def pins(name: str) -> dict[str, tuple[frozenset[str], str]]:
    """A requirements file's own pins (not its -r includes)."""
    lines = [text.split("#", 1)[0].strip()
             for text in (ROOT / name).read_text(encoding="utf-8").splitlines()]
    return versions([line for line in lines if line and not line.startswith("-")], "==", name)


def bounds(declared: list[str]) -> dict[str, tuple[frozenset[str], str]]:
    """pyproject requirements, each a lower bound."""
    return versions(declared, ">=", "pyproject.toml")


def test_runtime_dependencies_are_the_pins_as_lower_bounds() -> None:
    assert bounds(pyproject()["project"]["dependencies"]) == pins("requirements.txt")


def test_dev_extra_is_the_dev_pins_as_lower_bounds() -> None:
    extra = pyproject()["project"]["optional-dependencies"]["dev"]
    assert bounds(extra) == pins("requirements-dev.txt")


@pytest.mark.parametrize("template", [READ_ROLE_TEMPLATE, MANAGEMENT_READ_ROLE_TEMPLATE,
                                      HEAL_ROLE_TEMPLATE],
                         ids=lambda t: t.name)
def test_package_data_ships_the_iam_templates(template: Any) -> None:
    patterns = pyproject()["tool"]["setuptools"]["package-data"]["orgscope"]
    assert template.is_file()
    relative = f"{IAM_DIR.name}/{template.name}"
    assert any(fnmatch(relative, pattern) for pattern in patterns), relative


def test_testkit_is_not_installed() -> None:
    find = pyproject()["tool"]["setuptools"]["packages"]["find"]
    assert not any(fnmatch("testkit", pattern) for pattern in find["include"])
    assert any(fnmatch("testkit", pattern) for pattern in find.get("exclude", []))
