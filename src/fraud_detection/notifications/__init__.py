"""Alert notifications: the alerts topic delivered to Slack, a signed webhook and SNS (`fraud-detection notify`)."""
