"""Installs everything under one top-level package, ``ledger``: the repository keeps the read
models and the clients in folders of their own (projections/, clients/), and installing them
as top-level ``projections`` and ``clients`` would collide with anything else of those names.
The rest of the configuration is in pyproject.toml; this file only says where the packages are,
found anew at each build so that a new sub-package cannot be left out of the wheel."""

from setuptools import find_packages, setup

MAPPED = ("projections", "clients")  # installed as ledger.projections, ledger.clients

setup(
    packages=[*find_packages(include=["ledger", "ledger.*"]),
              *(f"ledger.{name}" for name in find_packages(include=[f"{m}{s}" for m in MAPPED
                                                                    for s in ("", ".*")]))],
    package_dir={f"ledger.{name}": name for name in MAPPED},
)
