"""The benchmark behind `make bench` / `make bench-quick` (issue 5).

The Batches RPCs, called exactly as PostgREST calls them (authenticator login role, BEGIN, the
`set_config` statement, the main statement, COMMIT), against bare SQL by the table owner in the
same run on the same server: create and update throughput with pgbench custom scripts, list
latency as the table grows, and plan checks. Modules: `config` (presets), `server` (server and
scratch database), `data` (set-based generation), `scripts` (pgbench scripts from the PostgREST
SQL builder), `pgbench` (running it), `plans` (plan checks), `report`, `driver`.
"""
