"""Pure planning: from an InferenceService, its runtimes and the configuration to the objects it needs."""
