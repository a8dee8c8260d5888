"""Short links for texts: ``/l/<code>`` on a business's booking site stands for a long signed link on
that same site (docs/messages.md, "Short links")."""
