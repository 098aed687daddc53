"""One decision asked again: what-if, sweeps, counterfactuals, explanations."""
