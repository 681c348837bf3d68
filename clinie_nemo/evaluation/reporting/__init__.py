"""Reports across runs: collect every scores.json (+ cost.json), a markdown table, PNG plots."""
