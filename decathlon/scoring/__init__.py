"""The Decathlon's S-score and the evaluation server's results.json format."""
