"""The math core: update rules, gradients, modified flows, their expansion and solution, norms."""
