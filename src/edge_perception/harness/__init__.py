"""What runs the nodes without `ros2 launch`: for the tests, the benchmarks, the demo and `run`.

- `runner`: `NodeGraph`, real nodes in one process (each on its own executor thread), and
  `run_graph` behind `edge-perception run`;
- `bag_player`, `replay`: rosbag2 playback into a graph, probes that record what it publishes,
  and the collision replay with its measured figures;
- `scenarios`, `samples`: synthetic depth scenes with known time to impact, and the bundled
  waste/crack sample sequences as bags;
- `waste_figures`: the waste chain's figures against the labels (demo and tests).

Nothing in `core/` or `nodes/` imports from here.
"""
