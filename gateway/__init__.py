"""Resource groups and members, providers and the model catalog, gateways."""
