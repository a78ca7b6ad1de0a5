"""Long-running test campaigns, run by hand or by ``make``, not collected by pytest."""
