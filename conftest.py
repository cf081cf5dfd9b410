"""Root pytest configuration: the CDK's hooks that turn acceptance-test-config.yml into standard-test scenarios."""

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
