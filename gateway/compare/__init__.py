"""`gym-gateway compare` and `gym-gateway replay`: run the same requests on several routes and
report speed, cost, parameter fidelity and how much the answers agree (docs/evals.md)."""
