"""Reports for the owner: revenue, jobs, technicians, quote conversion and routes, in SQL."""
