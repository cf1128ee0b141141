"""The Visual Domain Decathlon suite: data, models, methods, engine, benchmark, scoring, reports."""
