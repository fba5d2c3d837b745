"""Developer tooling: environment bootstrap, the demo runner and DAG-run helpers."""
