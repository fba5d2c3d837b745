"""HTTP transports that speak the pure API layer (:mod:`airflow_provider_octopods.api`)."""
