"""The multi-tenancy layer: host resolution, the RLS context, plans, provisioning."""
