"""Model format plug-ins; each module imports its own library, so import only the one you serve."""
