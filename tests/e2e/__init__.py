"""End-to-end tests: embedded broker -> ``tilewatch run`` subprocess -> scrape (and Prometheus)."""
