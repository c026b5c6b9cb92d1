"""Running dbt: the runner protocol, subprocess and in-process runners, the dbt contract, steps,
recording, the build lock."""
