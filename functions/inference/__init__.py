"""The HTTP inference Lambda (handler: ``functions.inference.app.lambda_handler``)."""
