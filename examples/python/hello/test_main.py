import unittest

import main


class HandleTest(unittest.TestCase):
    def test_echoes_data(self):
        for data in ({"name": "ferry"}, [1, 2], "text", None):
            self.assertEqual(
                main.handle({"data": data}, {}),
                {"message": "hello from python", "echo": data},
            )

    def test_no_data(self):
        self.assertEqual(main.handle({}, {})["echo"], None)


if __name__ == "__main__":
    unittest.main()
