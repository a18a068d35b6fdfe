"""Fixtures every tier may use."""

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.browser"]
