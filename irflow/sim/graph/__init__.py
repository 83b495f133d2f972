"""Microsoft Graph (a small part of it): users and service principals, as incident containment uses them."""
