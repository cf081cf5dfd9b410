"""Packaging for source-callvolume: the Airbyte source for Kore.ai AgentAssist call volume."""

from setuptools import find_packages, setup

VERSION = "0.2.0"

setup(
    name="source-callvolume",
    version=VERSION,
    description="Airbyte source connector for Kore.ai AgentAssist WFM Integration: call volume, queues, agents, agent activity.",
    author="source-callvolume developers",
    license="MIT",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["source_callvolume", "source_callvolume.*"]),
    package_data={"source_callvolume": ["manifest.yaml"]},
    install_requires=[
        "airbyte-cdk==7.39.1",
        # The project's one time library: every timestamp goes through source_callvolume/timestamps.py.
        "pendulum>=3.0,<4",
        "pyjwt>=2.8,<3",
        "requests>=2.31,<3",
    ],
    extras_require={
        # requests-mock: the CDK's HttpMocker imports it without declaring it.
        "tests": ["pytest>=8,<10", "requests-mock>=1.12,<2"],
        # `python3 dev.py mutate`: mutation testing of source_callvolume/ against the fast tests. pytest-timeout
        # fails a test that a mutant holds past 30 s (a planner waiting out a budget, a search of 26 years): mutmut's
        # own limit is the whole suite's time, 4 times over, per mutant.
        "mutation": ["mutmut>=3.3,<4", "pytest-timeout>=2.3,<3"],
    },
    entry_points={"console_scripts": ["source-callvolume=source_callvolume.run:run"]},
)
