"""Drupal: settings.php and CLI credentials, drush driver per major version, package scanning."""
