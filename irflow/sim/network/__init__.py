"""Microsoft.Network: network security groups with their rules, virtual networks with subnets and peerings."""
