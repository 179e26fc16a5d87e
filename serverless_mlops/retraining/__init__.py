"""Retraining: the steps of the Step Functions workflow (prepare → train → evaluate → gate → register → promote or
wait for approval → notify), what starts it, and how a person approves or rejects a candidate."""
