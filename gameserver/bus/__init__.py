"""The seams where roles meet: submit a request, push to a player, fan out to a channel, find a player's sessions."""
