"""Fixtures every tier may use."""

pytest_plugins = ["tests.fixtures.optional", "tests.fixtures.postgres", "tests.fixtures.browser"]
