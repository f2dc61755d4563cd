"""The COS jobs API: XML codec, error catalogue and routes shared by Lambda and `batchops serve`."""
