"""Many decisions at once, on Dask distributed: batch replay now; backtests, fairness,
drift and export build on the same pieces (`cluster` opens a client, `workers` keeps
warm containers in each worker process, the ledger is read in chunks)."""
