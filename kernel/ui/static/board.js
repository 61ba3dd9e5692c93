// statusflow board: the board page's drag and drop and Move to controls.
