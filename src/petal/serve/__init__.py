"""The web API and page: `petal serve MODEL [MODEL ...]` (see petal.serve.app)."""
