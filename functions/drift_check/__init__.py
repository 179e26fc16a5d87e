"""The drift-check Lambda: ``functions.drift_check.app.lambda_handler``."""
