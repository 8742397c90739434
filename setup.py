"""Package discovery for setuptools (the metadata lives in pyproject.toml).

The top-level folders ``adapters/`` and ``fixtures/`` install as
``portability.adapters`` and ``portability.fixtures``: a top-level ``adapters``
would clash with an unrelated PyPI package of that name. Every folder below them
with an ``__init__.py`` is a subpackage, found here rather than listed by hand.
"""

from setuptools import find_packages, setup

PACKAGE_ROOTS = {"portability": "portability", "portability.adapters": "adapters",
                 "portability.fixtures": "fixtures"}


def discover_packages() -> list[str]:
    """Every installed package name, from the three roots and their subfolders."""
    found = []
    for name, folder in PACKAGE_ROOTS.items():
        found.append(name)
        found.extend(f"{name}.{sub}" for sub in find_packages(folder))
    return sorted(set(found))


if __name__ == "__main__":
    setup(package_dir=PACKAGE_ROOTS, packages=discover_packages())
