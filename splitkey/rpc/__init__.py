"""gRPC plumbing shared by both servers and the client: status mapping, authorization, bootstrap."""
