"""Order: the fulfilment saga from placement to shipment or cancellation."""
