"""From finished jobs to predictions: `assemble` puts SpotTune jobs together as one model
file, `predict` runs a model file over prepared shards."""
from decathlon.inference.assemble import assemble_spottune, model_info
from decathlon.inference.predict import DomainPredictions, load_model, predict_model

__all__ = ["DomainPredictions", "assemble_spottune", "load_model", "model_info", "predict_model"]
