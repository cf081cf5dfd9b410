"""Benchmark of the installed `source-callvolume` connector against a plain `requests` loop; run `python -m bench`."""
