"""Studies built on the core: error orders, the bilinear model, the κ-variant, test losses."""
