"""What an identity may do: SQL classification and policy decisions."""
