"""The portal: the web front end where every person in the program signs in and acts."""
